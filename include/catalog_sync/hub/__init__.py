"""The integration hub database: models, migrations and repository functions."""
