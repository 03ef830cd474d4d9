"""The console: web pages for the 12345 centre, the departments and the public, served by the api
on its keys and roles (docs/console.md). ``ROUTERS`` go beside the JSON API's."""

from .pages import public_router, router

ROUTERS = (router, public_router)
