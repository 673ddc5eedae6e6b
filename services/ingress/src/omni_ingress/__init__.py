"""Ingress: webhook endpoints that check each messenger's signature, convert and durably queue messages."""
