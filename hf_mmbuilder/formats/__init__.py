"""The framework the loading scripts plug into, and the doors that reach every format.

- :mod:`.builder`: the builder base and config every format subclasses (``DJBuilder``,
  ``DJBuilderConfig``, ``fast_path``, shards, ``ColumnBuffer``);
- :mod:`.records`: JSON / JSON-lines record scanning and batches;
- :mod:`.exporter`: the exporter base (``RowExporter``, ``AtomicWriter``, ``iter_rows``);
- :mod:`.serialization`: a source file's written style (``SourceStyle``, found at load, written on export);
- :mod:`.fingerprint`: the cache key over every module a builder runs;
- :mod:`.catalog`: the formats, found by name (the only module importing loading scripts);
- :mod:`.registration`, :mod:`.loading`, :mod:`.exporting`, :mod:`.mixture`: the doors
  (``datasets`` registration, ``load``, ``export``, ``concat_formats`` / ``export_formats``).

Loading scripts import the framework modules, never the doors; only the DJ format uses the catalog
(promoting a DJ record to its source format needs that format's columns).
"""
