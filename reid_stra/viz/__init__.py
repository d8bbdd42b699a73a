"""Pictures for people: ranked lists, CMC curves, StRA mode heat maps (PIL only)."""
