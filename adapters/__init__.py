"""Adapters: one package per external system, each a sans-IO ``codec`` plus an asyncio
``adapter`` that converts to and from the internal model."""
