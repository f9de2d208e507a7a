"""The only package that imports `stripe` (through gateway/sdk.py).

Everything stripectl asks of Stripe (HTTP calls, signature checks, error
classes) goes through here, so the rest of the code works on plain dicts and
stripectl's own errors. Import it lazily: `import stripe` costs ~0.2 s.
"""
