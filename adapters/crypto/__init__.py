"""Crypto-shredding: per-subject keys (``keys``) and sealed personal fields (``fields``).

Personal fields of events are encrypted with a key of the person they are about
(``patient:<id>``, ``lead:<id>``, ``conversation:<id>``); erasing the person destroys
the key, so every copy of the ciphertext (event table, backups, replicas) becomes
unreadable while the events themselves stay and aggregates still rehydrate.
"""
