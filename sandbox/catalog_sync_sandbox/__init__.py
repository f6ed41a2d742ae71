"""The sandbox: an ERP, a PIM, a DAM, a storefront and a supplier portal as one HTTP service (issue #3).

Entry points: :func:`catalog_sync_sandbox.app.create_app`, :class:`catalog_sync_sandbox.server.SandboxServer`,
``catalog-sync sandbox ...``. The wire contract is ``docs/sandbox-api.md``.
"""
