"""The Monday report of last week's intake, hot topics, repeat rate and overdue cases
(docs/routing.md#the-monday-report), and the statuses it reads."""
