"""Databases for the application's own tests: ``schemaguard_migrated_database`` (a fresh
database at head per test), ``schemaguard_database_at`` (one at any revision) and
``schemaguard_migrator`` (step a fresh database through the revisions, for data-migration
tests).

Migrate once, clone per test: the schema at head is built once into a template database,
named after a content hash of what builds it (:mod:`.source`), and each test gets a clone
(:mod:`.templates`). The template outlives the session: on the plugin's own server it lives in
a cached copy of the initdb'd cluster, on a DSN server as a database of its own; a changed
hash replaces it.
"""
