"""User-visible sentences, one module per audience: `for_customers` (people asking), `for_agents` (agents)."""
