import asyncio

from django.core.management.base import BaseCommand, CommandError

from apps.brokerage.models import BrokerLink
from apps.brokerage.notices import NoticeListener


class Command(BaseCommand):
    help = "Listen to the execution notices of broker-linked accounts (one WebSocket per link) until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("--account", type=int, action="append", help="Paper account id (default: every link)")

    def handle(self, *args, **opts):
        links = BrokerLink.objects.filter(active=True)
        if opts["account"]:
            links = links.filter(account_id__in=opts["account"])
        links = list(links)
        if not links:
            raise CommandError("no active broker link")

        async def main():
            stop = asyncio.Event()
            listeners = [NoticeListener(link) for link in links]
            try:
                await asyncio.gather(*(listener.run(stop) for listener in listeners))
            finally:
                stop.set()

        self.stdout.write(f"listening to {len(links)} broker link(s); Ctrl-C stops")
        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            self.stdout.write("stopped")
