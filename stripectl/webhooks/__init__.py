"""Webhook deliveries: envelope formats, verification, the subscription state machine."""
