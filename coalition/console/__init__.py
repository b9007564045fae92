"""People who sign in to the pages: merchant owners and cashiers, network admins; their sessions."""
