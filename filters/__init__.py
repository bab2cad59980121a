"""Document cleaning: readers, extraction, language ID, PII masking, quality rules, dedup."""
