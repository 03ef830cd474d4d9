"""python -m services.api"""

from services.api.app import NAME, create_app
from shared.service import main

if __name__ == "__main__":
    main(NAME, create_app)
