"""Dataset versions: hashing, the content-addressed cache, checkout/verify, profiles, drift, lineage."""
