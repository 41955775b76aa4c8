"""Mistral over data: one prompt per row of a list, Series or DataFrame.

The public entry points are :func:`mistral_magic.apply` / :func:`mistral_magic.map`
(``bulk/apply.py``) and :func:`mistral_magic.batch_results` (``batch.py``). The modules here
each do one job:

* ``template``    — ``"{title}: {body}"`` templates (str.format rules, fields checked)
* ``inputs``      — rows in (list / Series / DataFrame), results out in the same shape
* ``structured``  — JSON mode and JSON Schema: instructions, parsing, validation
* ``requests``    — the exact request per row, deduplicated, with its cache key
* ``outcomes``    — replies and failures per request; ``ApplyError`` values per row
* ``preflight``   — counting prompt tokens, the cost estimate, the confirmation
* ``pool``        — the concurrent, 429-adaptive runner (asyncio, in a worker thread)
* ``progress``    — the progress bar (tqdm.auto)
* ``session``     — settings and clients for a run
* ``magic``       — functions the ``%%mistral --map`` / ``%mistral cache`` magics call

Nothing here is imported by ``import mistral_magic``.
"""
