"""The router's domain: chats, operators, queues, channels, contacts and messages as typed values, and the rules
that decide about them (routing, capacity, visibility, allowed actions, timeouts), as pure functions."""
