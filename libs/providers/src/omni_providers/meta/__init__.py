"""Meta's messengers on the Graph API: Facebook Messenger (`messenger`) and WhatsApp Cloud API (`whatsapp`)."""

from omni_providers.meta.messenger import MessengerProvider
from omni_providers.meta.whatsapp import WhatsAppProvider

__all__ = ["MessengerProvider", "WhatsAppProvider"]
