"""The dialect-agnostic core: records, migration files, the plan and the migrate loop. Imports no feature, no CLI."""
