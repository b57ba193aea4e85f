"""Dated rule files (regions, consumption taxes, import duties) that finance can read and edit."""
