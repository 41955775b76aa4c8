"""The engine every face goes through: a question plus context plus settings becomes one
request (:mod:`.prepare`), its reply is streamed with the tools the model calls
(:mod:`.tool_loop`), and its cost is counted (:mod:`.usage`) or answered from the response
cache (:mod:`.cache`). Nothing here imports a face."""
