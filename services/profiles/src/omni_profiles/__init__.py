"""Profiles: names the contact of each new sender, from the messenger's profile API or from the webhook itself."""
