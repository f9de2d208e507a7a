"""The only package that imports `stripe`.

Everything stripectl asks of Stripe (HTTP calls, signature checks, error
classes) goes through here, so the rest of the code works on plain dicts and
stripectl's own errors. Import it lazily: `import stripe` costs ~0.3 s.
"""
