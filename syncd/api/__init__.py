"""The HTTP facade: Waldur-compatible /api/marketplace-software-* endpoints.

`app.create_app` wires settings, the database engine, the broker and the adapters into a
FastAPI application; the route modules are thin and call plain query functions.
"""
