from omni_ingress.app import SERVICE, create_app
from omni_runtime.service import main

if __name__ == "__main__":
    main(create_app, SERVICE, workers=lambda settings: settings.ingress_workers)
