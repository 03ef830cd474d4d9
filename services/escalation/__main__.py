"""python -m services.escalation"""

from services.escalation.app import NAME, create_app
from shared.service import main

if __name__ == "__main__":
    main(NAME, create_app)
