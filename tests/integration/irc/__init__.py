"""IRC integration tests (InspIRCd + Anope, ngIRCd)."""
