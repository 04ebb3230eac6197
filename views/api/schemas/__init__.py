"""The /v1 API's shapes as pydantic models, one module per area: each request body, query
and answer is declared once, and both checks requests and makes the OpenAPI document."""
