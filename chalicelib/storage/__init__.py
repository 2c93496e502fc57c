"""DynamoDB models, AWS clients and the write helpers built on them. Imports core only."""
