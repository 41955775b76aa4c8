"""Defaults shared by the client and the settings (kept free of imports)."""

DEFAULT_BASE_URL = "https://api.mistral.ai/v1"
DEFAULT_MODEL = "mistral-large-latest"
# Fill-in-the-middle (inline completion): Codestral, on its own host when it has its own key.
DEFAULT_FIM_MODEL = "codestral-latest"
CODESTRAL_BASE_URL = "https://codestral.mistral.ai/v1"
CONTEXT_WINDOW = 131072
# Seconds without content (no answer yet, or a stream that stalls) before a request fails.
DEFAULT_TIMEOUT = 120.0
# The longest reply kept, in characters: a 128k-token reply is about 500,000 characters.
DEFAULT_MAX_REPLY_CHARS = 1_000_000
DEFAULT_MAX_RETRIES = 3
# The longest time one request may spend waiting between retries (Retry-After included).
DEFAULT_RETRY_BUDGET = 90.0
