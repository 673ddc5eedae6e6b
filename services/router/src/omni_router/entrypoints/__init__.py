"""The router's entry points: HTTP endpoints (parse, call one use case, answer), the queue consumers, the sweeps and
the spreading of the input partitions over the running routers."""
