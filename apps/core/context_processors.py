from django.conf import settings


def hoga(request):
    """Values every page needs: where Flower lives and which market the stack talks to."""
    return {"FLOWER_URL": settings.FLOWER_URL, "MARKET_BROKER": settings.MARKET_BROKER}
