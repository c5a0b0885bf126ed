"""The trader's screen: the bar-by-bar answer of a session (replayed or live) and the web page that shows it."""
