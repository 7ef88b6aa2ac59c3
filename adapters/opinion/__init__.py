"""The public-opinion channel: feeds, pages of forums and message boards, site definitions
and the ``minsheng feeds``/``minsheng sites`` commands."""
