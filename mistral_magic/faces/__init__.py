"""The faces in the kernel: the ``%%mistral`` magics (:mod:`.magics`), the chat panel and the
error buttons (:mod:`.widgets`), the traceback hook and ``%mistral explain|fix``
(:mod:`.tracebacks`), and what they share to show replies (:mod:`.render`,
:mod:`.markdown_html`, :mod:`.cell_insert`). The sidebar's face is ``server/``."""
