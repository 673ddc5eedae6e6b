from omni_runtime.service import serve
from omni_runtime.settings import Settings

from omni_dispatcher.app import SERVICE, create_app

if __name__ == "__main__":
    settings = Settings()
    serve(create_app(settings), SERVICE, settings)
