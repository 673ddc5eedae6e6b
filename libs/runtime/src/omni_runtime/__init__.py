"""What the five services share: settings, broker, database, HTTP health, logging and retries."""
