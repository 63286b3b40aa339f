"""kopf handlers: translate kopf's kwargs into planning calls and cluster writes. No decisions live here."""
