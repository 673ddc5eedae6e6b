"""The local run: RabbitMQ and a MongoDB stand-in, the five services and the provider simulator, in one command."""
