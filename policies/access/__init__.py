"""Who may see what (ACCESS.md): one YAML file per department, the pydantic models that read
them, the walker that finds forbidden paths in a GraphQL document, and the masks. Imports nothing
of the benefit policies or the settlement engine.
"""
