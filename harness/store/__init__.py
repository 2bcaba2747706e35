"""Everything the harness keeps: where files live (`paths`), what a scores directory holds
(`results`), the typed JSON documents (`documents`), a sweep's study and the one handle on Optuna's
private API (`study`), the shared artifact store (`artifacts`) and the read models of select/
(`reading`). Import the module you need; this package face imports nothing, so `paths` stays
importable from the lowest layer."""
