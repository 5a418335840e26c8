"""Types of the compiled module built from `streams/native/` (Rust, PyO3)."""

class Route:
    """A valid record's destination: its topic, and its `lead_id` as the Kafka key."""

    topic: str
    lead_id: str
    def __init__(self, topic: str, lead_id: str) -> None: ...

class Router:
    """Routes records to the topics it was made with."""

    def __init__(self, leads_topic: str, deals_topic: str) -> None: ...
    def route(self, raw: bytes, now_ms: int) -> Route | None:
        """The route of a valid record; None when `parse_record` must decide."""
