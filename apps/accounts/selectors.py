from django.db.models import QuerySet

from .models import PaperAccount


def paper_account_list_for_user(*, user) -> QuerySet[PaperAccount]:
    return PaperAccount.objects.filter(user=user).order_by("id")
