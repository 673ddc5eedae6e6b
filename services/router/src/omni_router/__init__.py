"""Router: stores chats, contacts and messages, applies the queues' routing rules, serves the operator API."""
