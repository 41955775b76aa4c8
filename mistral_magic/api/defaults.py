"""Defaults shared by the client and the settings (kept free of imports)."""

DEFAULT_BASE_URL = "https://api.mistral.ai/v1"
DEFAULT_MODEL = "mistral-large-latest"
CONTEXT_WINDOW = 131072
