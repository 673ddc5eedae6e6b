"""The router's use cases: the routing engine, the operators' desk, the inbox, updates from other services, the
admin's settings; orchestrated through the ports (ports.py), never through a driver."""
