"""Offline: synthetic AP worlds, dataset builders, train / evaluate / register commands."""
