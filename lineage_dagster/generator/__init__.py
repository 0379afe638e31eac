from lineage_dagster.generator.producer import produce_events

__all__ = ["produce_events"]
