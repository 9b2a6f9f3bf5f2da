"""The synthetic AP world: seeded master data, labelled documents and their review history."""
