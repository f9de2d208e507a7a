"""One saved webhook delivery, as read from any input format."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Delivery:
    """The raw material of a delivery; nothing here has been verified yet.

    `body` is the raw request body exactly as received (bytes, possibly not
    UTF-8). `error` is set when the input itself was unreadable (truncated
    JSON line, empty file...): such a delivery is stored and rejected with
    that reason, never dropped.
    """

    source: str  # "path:line", "listener", "api"
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    received_at: int | None = None
    error: str | None = None  # rejection reason found while reading
    error_detail: str | None = None
    unsigned: bool = False  # a bare event accepted with --unsigned
    trusted: bool = False  # fetched from the Events API with our key: no signature
    text: str | None = None  # the body already decoded, when the reader had it as text

    def body_text(self) -> str:
        """The body as text; raises UnicodeDecodeError if it is not UTF-8."""
        if self.text is None:
            self.text = self.body.decode("utf-8")
        return self.text

    @property
    def signature(self) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == "stripe-signature":
                return value
        return None
