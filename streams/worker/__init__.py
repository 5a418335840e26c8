"""The stream processor: the Faust app, the batch agent that applies events to Redis, `rebuild`."""
