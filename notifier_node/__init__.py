"""The notifier node: the recognizer's alerts to Telegram (or a local outbox), and the household's bot."""
