"""The experiment machinery every entry point shares: the typed run configuration (`config`), loading data
and models from it (`setup`), the atomic results store (`store`), the versioned record schema
(`records`), the one runner with torchrun sharding (`runner`, `sharding`) and the report writers (`report`).

Entry points compose the library (`empirical.*`) and this harness; they never import one another.
"""
