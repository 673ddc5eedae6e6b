"""The router's adapters: MongoDB repositories (the only modules that touch the driver), the broker's publishers,
the providers, GridFS, the clock, and the upgrades of data written by earlier versions."""
