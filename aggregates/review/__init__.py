"""The monthly and quarterly review (`leadpulse report --html`): pure maths apart from its reads and its rendering."""
