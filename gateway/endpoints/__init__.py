"""Thin HTTP handlers: each reads the request and hands it down the request path."""
